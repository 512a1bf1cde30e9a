// Command nothing is the floor under every start: a Go program that
// returns from main at once. From its exec to its exit is what the dynamic
// loader and the Go runtime's start cost, with next to no package's init.
// It imports net, as every server does, so that it is linked as they are
// (against libc, through the dynamic loader, where cgo is on).
package main

import _ "net"

var version = "dev"

func main() { _ = version }
