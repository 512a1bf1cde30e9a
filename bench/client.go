package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"time"
)

// The steady-state and polling clients speak HTTP/1.1 by hand: a few
// allocations per request, so that on a 2-core machine shared with the
// server the load generator takes as little CPU as it can.
var (
	requestKeepAlive = []byte("GET / HTTP/1.1\r\nHost: bench\r\n\r\n")
	requestClose     = []byte("GET / HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n")
	echoLine         = []byte("0123456789abcdefghijklmnopqrstu\n") // 32 bytes
)

const opTimeout = 5 * time.Second

// readResponse reads one response and returns its status and the
// X-Version header; the body is read and dropped.
func readResponse(br *bufio.Reader) (status int, version string, err error) {
	line, err := br.ReadSlice('\n')
	if err != nil {
		return 0, "", err
	}
	if len(line) < 12 || !bytes.HasPrefix(line, []byte("HTTP/1.")) {
		return 0, "", fmt.Errorf("bad status line %q", line)
	}
	if status, err = strconv.Atoi(string(line[9:12])); err != nil {
		return 0, "", fmt.Errorf("bad status line %q", line)
	}
	length := -1
	for {
		line, err = br.ReadSlice('\n')
		if err != nil {
			return 0, "", err
		}
		if len(line) <= 2 {
			break
		}
		name, value, ok := bytes.Cut(line, []byte(":"))
		if !ok {
			continue
		}
		value = bytes.TrimSpace(value)
		switch {
		case bytes.EqualFold(name, []byte("Content-Length")):
			if length, err = strconv.Atoi(string(value)); err != nil {
				return 0, "", fmt.Errorf("bad Content-Length %q", value)
			}
		case bytes.EqualFold(name, []byte("X-Version")):
			version = string(value)
		}
	}
	if length < 0 {
		return 0, "", errors.New("response without Content-Length")
	}
	if _, err := br.Discard(length); err != nil {
		return 0, "", err
	}
	return status, version, nil
}

// httpConn is one client connection of the hand-written HTTP client.
type httpConn struct {
	c  net.Conn
	br *bufio.Reader
}

func dialHTTP(addr string) (*httpConn, error) {
	c, err := net.DialTimeout("tcp", addr, opTimeout)
	if err != nil {
		return nil, err
	}
	return &httpConn{c: c, br: bufio.NewReaderSize(c, 4096)}, nil
}

// get sends one GET / and reads the answer.
func (h *httpConn) get(req []byte) (version string, err error) {
	h.c.SetDeadline(time.Now().Add(opTimeout))
	if _, err := h.c.Write(req); err != nil {
		return "", err
	}
	status, version, err := readResponse(h.br)
	if err == nil && status != 200 {
		err = fmt.Errorf("status %d", status)
	}
	return version, err
}

// getOnce is GET / on a connection of its own, which the server closes.
func getOnce(addr string) (version string, err error) {
	h, err := dialHTTP(addr)
	if err != nil {
		return "", err
	}
	defer h.c.Close()
	return h.get(requestClose)
}

// echo sends one line and reads it back.
func echo(c net.Conn, buf []byte) error {
	c.SetDeadline(time.Now().Add(opTimeout))
	if _, err := c.Write(echoLine); err != nil {
		return err
	}
	if _, err := io.ReadFull(c, buf[:len(echoLine)]); err != nil {
		return err
	}
	if !bytes.Equal(buf[:len(echoLine)], echoLine) {
		return errors.New("echo answered something else")
	}
	return nil
}

// echoOnce connects, echoes one line and closes.
func echoOnce(addr string, buf []byte) error {
	c, err := net.DialTimeout("tcp", addr, opTimeout)
	if err != nil {
		return err
	}
	defer c.Close()
	return echo(c, buf)
}

// waitVersion polls GET / on a new connection each time, as fast as it
// can, until an answer comes from the build version, and returns when.
// Each poll takes a fresh connection so that whichever process accepts next
// answers it.
func waitVersion(addr, version string, timeout time.Duration) (time.Time, error) {
	deadline := time.Now().Add(timeout)
	var last error
	for time.Now().Before(deadline) {
		v, err := getOnce(addr)
		if err == nil && v == version {
			return time.Now(), nil
		}
		last = err
	}
	return time.Time{}, fmt.Errorf("no answer from %s within %v (last error: %v)", version, timeout, last)
}
