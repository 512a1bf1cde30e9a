// Command nothing is the floor under every start: a Go program that
// returns from main at once. From its exec to its exit is what the dynamic
// loader and the Go runtime's start cost, with no package's init to speak of.
package main

var version = "dev"

func main() { _ = version }
