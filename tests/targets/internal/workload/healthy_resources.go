package workload

import (
	"io"
	"net"
	"os"
	"time"
)

// Healthy descriptor use: files and connections opened and closed all the
// time, with a bounded number open at once. For both, -n is how many stay
// open (default 100); every 20 ms one more is opened and, once n are open,
// the oldest is closed. The count rises for n x 20 ms (2 s) and stays flat.
//
//   - healthy-files: openAndRead opens the executable and reads 4 KiB.
//   - healthy-conns: dialAndPing dials a loopback listener of the same process
//     and writes a few bytes; serveUntilClosed reads each connection until the
//     client closes it, then closes its end (2 sockets per open connection).

const replacePeriod = 20 * time.Millisecond

func init() {
	register("healthy-files", healthyFiles)
	register("healthy-conns", healthyConns)
}

func healthyFiles(n int) {
	path, err := os.Executable()
	if err != nil {
		fail("finding the executable to open: %v", err)
	}
	keepOpen(n, func() io.Closer { return openAndRead(path) })
}

func openAndRead(path string) io.Closer {
	f, err := os.Open(path)
	if err != nil {
		fail("healthy-files: %v", err)
	}
	if _, err := io.ReadFull(f, make([]byte, 4<<10)); err != nil {
		fail("healthy-files: reading %s: %v", path, err)
	}
	return f
}

func healthyConns(n int) {
	ln := listenLoopback()
	go acceptForever(ln, func(c net.Conn) { go serveUntilClosed(c) })
	addr := ln.Addr().String()
	keepOpen(n, func() io.Closer { return dialAndPing(addr) })
}

func dialAndPing(addr string) io.Closer {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		fail("healthy-conns: %v", err)
	}
	if _, err := c.Write([]byte("ping\n")); err != nil {
		fail("healthy-conns: writing: %v", err)
	}
	return c
}

func serveUntilClosed(c net.Conn) {
	io.Copy(io.Discard, c)
	c.Close()
}

// keepOpen opens a handle every replacePeriod and keeps the last n open.
func keepOpen(n int, open func() io.Closer) {
	handles := newRing[io.Closer](n)
	every(replacePeriod, forever, func() {
		if oldest, full := handles.push(open()); full {
			oldest.Close()
		}
	})
}
