package main

import (
	"os"
	"path/filepath"
	"testing"
)

// A cachegrind output file as valgrind 3.19 writes it with --cache-sim=no.
const cachegrindSample = `desc: I1 cache: 32768 B, 64 B, 8-way associative
cmd: /tmp/x/gozd-server -f -c bench.conf
events: Ir
fl=/usr/local/go/src/net/http/server.go
fn=net/http.(*conn).serve
100 7
101 3
fl=/work/conn.go
fn=github.com/gozd/gozd.(*httpConn).Read
120 5
fn=net/http.(*conn).serve
102 2
summary: 17
`

func TestReadCachegrind(t *testing.T) {
	path := filepath.Join(t.TempDir(), "cg.1")
	if err := os.WriteFile(path, []byte(cachegrindSample), 0o644); err != nil {
		t.Fatal(err)
	}
	run, err := readCachegrind(path)
	if err != nil {
		t.Fatal(err)
	}
	if run.total != 17 || run.byFunc["net/http.(*conn).serve"] != 12 || run.byFunc["github.com/gozd/gozd.(*httpConn).Read"] != 5 {
		t.Errorf("got total %d, by function %v", run.total, run.byFunc)
	}
	if err := os.WriteFile(path, []byte("events: Ir\nfn=x\n1 2\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := readCachegrind(path); err == nil {
		t.Error("a file without a summary line was read without error")
	}
}

func TestInstrPartsAndDiffs(t *testing.T) {
	a := instrServer{byFunc: map[string]float64{"net/http.(*conn).serve": 100, "sync.(*Pool).Get": 10, "runtime.mallocgc": 50}}
	b := instrServer{byFunc: map[string]float64{"net/http.(*conn).serve": 101, "sync.(*Pool).Get": 20, "runtime.mallocgc": 50, "github.com/gozd/gozd.(*httpConn).Read": 30}}
	parts := instrParts(b)
	if parts["gozd"] != 30 || parts["sync"] != 20 || parts["runtime"] != 50 || parts["rest"] != 101 {
		t.Errorf("parts %v", parts)
	}
	ds := topDiffs(a, b, 2)
	if len(ds) != 2 || ds[0].fn != "github.com/gozd/gozd.(*httpConn).Read" || ds[0].change != 30 || ds[1].fn != "sync.(*Pool).Get" || ds[1].change != 10 {
		t.Errorf("top differences %+v", ds)
	}
}
