// Package sqlutil holds small helpers the SQL drivers share.
package sqlutil
