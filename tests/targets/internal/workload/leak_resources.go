package workload

import (
	"net"
	"os"
)

// Resource leaks: descriptors opened and never closed. For both workloads -n
// is the period in milliseconds between two leaks (default 100: 10 per
// second), and each stops when its descriptors reach half the soft open-files
// limit. References are kept in globals: the finalizers of *os.File and
// net.Conn would otherwise close what the GC finds unreachable.
//
//   - leak-fds: leakOpenFile opens the target's own executable (a regular file)
//     and never closes it: 10 fds per second.
//   - leak-sockets: leakDialConn dials a TCP listener of the same process and
//     never closes the connection; the accepting side keeps its end open too:
//     2 ESTABLISHED sockets (2 fds) per leak, 20 per second.

func init() {
	register("leak-fds", leakFiles)
	register("leak-sockets", leakSockets)
}

var leakedFiles []*os.File

func leakFiles(n int) {
	path, err := os.Executable()
	if err != nil {
		fail("finding the executable to open: %v", err)
	}
	every(millis(n), fdBudget(1), func() { leakOpenFile(path) })
}

//go:noinline
func leakOpenFile(path string) {
	f, err := os.Open(path)
	if err != nil {
		fail("leak-fds: %v", err)
	}
	leakedFiles = append(leakedFiles, f)
}

var leakedClientConns, leakedServerConns []net.Conn

func leakSockets(n int) {
	ln := listenLoopback()
	go acceptForever(ln, func(c net.Conn) { leakedServerConns = append(leakedServerConns, c) })
	addr := ln.Addr().String()
	every(millis(n), fdBudget(2), func() { leakDialConn(addr) })
}

//go:noinline
func leakDialConn(addr string) {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		fail("leak-sockets: %v", err)
	}
	leakedClientConns = append(leakedClientConns, c)
}

// listenLoopback opens a TCP listener on a free loopback port.
func listenLoopback() net.Listener {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fail("listening: %v", err)
	}
	return ln
}

// acceptForever hands every accepted connection to handle, on the accepting
// goroutine.
func acceptForever(ln net.Listener, handle func(net.Conn)) {
	for {
		c, err := ln.Accept()
		if err != nil {
			fail("accepting: %v", err)
		}
		handle(c)
	}
}
