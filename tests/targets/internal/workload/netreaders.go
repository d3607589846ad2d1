package workload

import (
	"bufio"
	"io"
	"net"
	"sync"
)

// net-readers: goroutines blocked in network reads and accepts from different
// functions, every one of them waiting in internal/poll. -n connections are
// read by each reader; the listener's side keeps its ends open and never
// writes, so the readers wait for ever.
//
//   - readLines reads through a bufio.Reader
//   - readFrames reads with io.ReadFull
//   - readRaw calls Read on the connection itself
//   - acceptForever waits for the next connection

func init() { register("net-readers", netReaders) }

var (
	heldMu    sync.Mutex
	heldConns []net.Conn
)

func netReaders(n int) {
	ln := listenLoopback()
	go acceptForever(ln, func(c net.Conn) {
		heldMu.Lock()
		heldConns = append(heldConns, c)
		heldMu.Unlock()
	})
	addr := ln.Addr().String()
	for _, reader := range []func(net.Conn){readLines, readFrames, readRaw} {
		for i := 0; i < positive(n); i++ {
			c, err := net.Dial("tcp", addr)
			if err != nil {
				fail("net-readers: %v", err)
			}
			go reader(c)
		}
	}
}

//go:noinline
func readLines(c net.Conn) {
	bufio.NewReader(c).ReadString('\n')
}

//go:noinline
func readFrames(c net.Conn) {
	io.ReadFull(c, make([]byte, 16))
}

//go:noinline
func readRaw(c net.Conn) {
	c.Read(make([]byte, 16))
}
