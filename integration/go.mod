module github.com/gozd/gozd/integration

go 1.26.0

replace github.com/gozd/gozd => ../

require (
	github.com/coder/websocket v1.8.15
	github.com/gozd/gozd v0.0.0-00010101000000-000000000000
	golang.org/x/net v0.62.0
	google.golang.org/grpc v1.85.0
)

require (
	github.com/VictoriaMetrics/metrics v1.45.0 // indirect
	github.com/coreos/go-systemd/v22 v22.7.0 // indirect
	github.com/valyala/fastrand v1.1.0 // indirect
	github.com/valyala/histogram v1.2.0 // indirect
	golang.org/x/sys v0.50.0 // indirect
	golang.org/x/text v0.43.0 // indirect
	google.golang.org/genproto/googleapis/rpc v0.0.0-20260817212433-ac3dfec99bb1 // indirect
	google.golang.org/protobuf v1.36.12 // indirect
)
