// Package integration holds tests of gozd with the real third-party peers
// users put in front of it or wrap around it (golang.org/x/net's h2c, ...).
// It is its own module, so those dependencies never enter gozd's go.mod.
package integration
