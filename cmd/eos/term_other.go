//go:build !unix

package main

import "os"

// terminalWidth returns 0: the width is unknown here, and lines stay
// within maxLine.
func terminalWidth(*os.File) int { return 0 }
