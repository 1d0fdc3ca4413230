// Package drivertest is the conformance suite of the storage contract
// (package driver), and nothing else.
//
// A new engine proves itself by passing [Run]:
//
//	func TestConformance(t *testing.T) {
//		drivertest.Run(t, func(t *testing.T) driver.Driver[*sql.Tx] { return newIsolatedDriver(t) })
//	}
//
// and by passing [RunStatements], given a count of the statements its
// connections run, which holds it to a number of statements per call that
// does not grow with the rows.
package drivertest
