package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
)

// The two builds a reload run alternates between; every response names the
// build that answered it.
var versions = [2]string{"v1", "v2"}

// binaries maps a server name and version to its built binary.
type binaries map[string]map[string]string

// sourceDir is the bench module's directory: the working directory when it
// holds the servers (go run .), else the directory this file was compiled
// from.
func sourceDir() (string, error) {
	if _, err := os.Stat("servers/gozd/main.go"); err == nil {
		return os.Getwd()
	}
	if _, file, _, ok := runtime.Caller(0); ok {
		dir := filepath.Dir(file)
		if _, err := os.Stat(filepath.Join(dir, "servers/gozd/main.go")); err == nil {
			return dir, nil
		}
	}
	return "", errors.New("run from the bench directory: cd bench && go run .")
}

// buildAll builds every server into dir: plain once, gozd and tableflip in
// both versions.
func buildAll(src, dir string) (binaries, error) {
	bins := binaries{}
	for _, b := range []struct {
		name     string
		versions []string
	}{
		{"plain", versions[:1]},
		{"gozd", versions[:]},
		{"tableflip", versions[:]},
		{"gozd-services", versions[:1]},
		{"plain-services", versions[:1]},
		{"nothing", versions[:1]},
	} {
		bins[b.name] = map[string]string{}
		for _, v := range b.versions {
			out := filepath.Join(dir, b.name+"-"+v)
			if err := buildServer(src, b.name, v, out); err != nil {
				return nil, err
			}
			bins[b.name][v] = out
		}
	}
	return bins, nil
}

// buildServer builds the server name of the bench module at src, with
// version as its version string, into out.
func buildServer(src, name, version, out string) error {
	cmd := exec.Command("go", "build", "-o", out, "-ldflags", "-X main.version="+version, "./servers/"+name)
	cmd.Dir = src
	if msg, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("building %s %s in %s: %v\n%s", name, version, src, err, msg)
	}
	return nil
}

// againstVersion keys, among gozd's binaries, the one built by buildAgainst.
const againstVersion = "against"

// buildAgainst builds the bench's gozd server of the gozd checkout at root,
// as buildAll builds this one's first version (the same version string,
// so both answer with bodies of one length).
func buildAgainst(root, dir string) (string, error) {
	src, err := filepath.Abs(filepath.Join(root, "bench"))
	if err != nil {
		return "", err
	}
	out := filepath.Join(dir, "gozd-"+againstVersion)
	return out, buildServer(src, "gozd", versions[0], out)
}

// install puts the binary src at dst as a deploy does: written to a
// temporary file beside dst, then renamed over it, so a process running the
// old file is not disturbed and the next exec of dst runs the new one.
func install(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	tmp := dst + ".tmp"
	out, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o755)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	if err := out.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, dst)
}
