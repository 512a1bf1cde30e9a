module github.com/gozd/gozd/bench

go 1.26.0

replace github.com/gozd/gozd => ../

require (
	github.com/cloudflare/tableflip v1.2.3
	github.com/gozd/gozd v0.0.0-00010101000000-000000000000
	golang.org/x/sys v0.50.0
)

require github.com/coreos/go-systemd/v22 v22.7.0 // indirect
