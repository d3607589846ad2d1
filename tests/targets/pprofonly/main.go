// pprofonly serves net/http/pprof and expvar, without the gops agent.
//
// -pprof=false serves expvar alone (like etcd without --enable-pprof);
// -vars=nested answers /debug/vars with a "memstats" nested far deeper than a
// JSON parser should follow; -vars=hang never answers it (a handler stuck
// behind a lock); -tls serves HTTPS only (a self-signed
// certificate); -log FILE appends a line for each connection, each request and
// each TLS handshake error, so that tests can count what gotop asked;
// -unix PATH serves on a UNIX socket at PATH ("@name": an abstract one) instead
// of TCP (-unix-mode sets the socket file's permissions); -silent-unix PATH
// also listens on a UNIX socket that reads whatever it is sent and never says
// a word (a protocol that waits for more, as containerd's ttrpc does), logging
// "silent connect" for each connection to the -log file.
package main

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"expvar"
	"flag"
	"io"
	"log"
	"math/big"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"sync"
	"time"

	"gotop.test/targets/internal/ready"
	"gotop.test/targets/internal/workload"
)

const nestedDepth = 5000

func main() {
	workload.DefineFlags()
	httpAddr := flag.String("http", "127.0.0.1:0", "address for net/http/pprof and expvar")
	servePprof := flag.Bool("pprof", true, "serve net/http/pprof under /debug/pprof/")
	vars := flag.String("vars", "expvar", "what /debug/vars serves: expvar, nested (memstats nested 5000 arrays deep), hang (no answer), none")
	serveTLS := flag.Bool("tls", false, "serve HTTPS only, with a self-signed certificate")
	logPath := flag.String("log", "", "append a line per connection (\"connect\"), request (\"GET /path\") and TLS handshake error to this file")
	unixPath := flag.String("unix", "", "serve on this UNIX socket (\"@name\": abstract) instead of -http")
	unixMode := flag.Uint("unix-mode", 0o600, "permissions of the -unix socket file")
	silentUnix := flag.String("silent-unix", "", "also listen on this UNIX socket, read, and never answer")
	listenAfter := flag.Duration("listen-after", 0, "run the workload this long before listening (a service that loads its data first)")
	flag.Parse()
	workload.Start()
	time.Sleep(*listenAfter)

	mux := http.NewServeMux()
	if *servePprof {
		mux.HandleFunc("/debug/pprof/", pprof.Index) // the index and every named profile
		mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	}
	switch *vars {
	case "expvar":
		mux.Handle("/debug/vars", expvar.Handler())
	case "nested":
		mux.HandleFunc("/debug/vars", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json; charset=utf-8")
			w.Write(append([]byte(`{"memstats": `), bytes.Repeat([]byte("["), nestedDepth)...))
		})
	case "hang":
		mux.HandleFunc("/debug/vars", func(w http.ResponseWriter, r *http.Request) {
			<-r.Context().Done() // until the client gives up
		})
	case "none":
	default:
		log.Fatalf("unknown -vars %q (have: expvar, nested, hang, none)", *vars)
	}

	server := &http.Server{Handler: mux}
	var requests *requestLog
	if *logPath != "" {
		requests = openLog(*logPath)
		server.ConnState = func(c net.Conn, state http.ConnState) {
			if state == http.StateNew {
				requests.line("connect")
			}
		}
		server.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			requests.line(r.Method + " " + r.URL.RequestURI())
			mux.ServeHTTP(w, r)
		})
		server.ErrorLog = log.New(handshakeErrors{requests}, "", 0)
	}

	ln, err := listen(*httpAddr, *unixPath, os.FileMode(*unixMode))
	if err != nil {
		log.Fatal(err)
	}
	if *silentUnix != "" {
		silent, err := net.Listen("unix", *silentUnix)
		if err != nil {
			log.Fatal(err)
		}
		go readSilently(silent, requests)
	}
	if *serveTLS {
		server.TLSConfig = &tls.Config{Certificates: []tls.Certificate{selfSigned()}}
		ln = tls.NewListener(ln, server.TLSConfig)
	}
	ready.Announce("", ln.Addr().String())
	log.Fatal(server.Serve(ln))
}

// listen opens the TCP address, or the UNIX socket when one is given.
func listen(tcpAddr, unixPath string, mode os.FileMode) (net.Listener, error) {
	if unixPath == "" {
		return net.Listen("tcp", tcpAddr)
	}
	ln, err := net.Listen("unix", unixPath)
	if err == nil && unixPath[0] != '@' {
		err = os.Chmod(unixPath, mode)
	}
	return ln, err
}

// readSilently takes every connection and reads it to its end without a word.
func readSilently(ln net.Listener, requests *requestLog) {
	for {
		conn, err := ln.Accept()
		if err != nil {
			log.Fatal(err)
		}
		if requests != nil {
			requests.line("silent connect")
		}
		go io.Copy(io.Discard, conn)
	}
}

// selfSigned makes a throwaway certificate for 127.0.0.1.
func selfSigned() tls.Certificate {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		log.Fatal(err)
	}
	template := x509.Certificate{
		SerialNumber: big.NewInt(1),
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
	}
	der, err := x509.CreateCertificate(rand.Reader, &template, &template, &key.PublicKey, key)
	if err != nil {
		log.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// handshakeErrors notes in the request log each TLS handshake error the server reports.
type handshakeErrors struct{ log *requestLog }

func (h handshakeErrors) Write(p []byte) (int, error) {
	if bytes.Contains(p, []byte("TLS handshake error")) {
		h.log.line("tls handshake error")
	}
	return len(p), nil
}

type requestLog struct {
	mu   sync.Mutex
	file *os.File
}

func openLog(path string) *requestLog {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		log.Fatal(err)
	}
	return &requestLog{file: f}
}

func (l *requestLog) line(text string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.file.WriteString(text + "\n")
}
