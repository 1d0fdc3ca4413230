// Package drivertest is the conformance suite of the storage contract
// (package driver), and nothing else.
//
// A new engine proves itself by passing [Run]:
//
//	func TestConformance(t *testing.T) {
//		drivertest.Run(t, func(t *testing.T) driver.Driver[*sql.Tx] { return newIsolatedDriver(t) })
//	}
package drivertest
