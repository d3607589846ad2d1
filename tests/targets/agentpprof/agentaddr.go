package main

import (
	"io/ioutil"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// agentListenAddr reads back the port the agent wrote to its port file, the
// only place the gops agent API reveals it.
func agentListenAddr() string {
	dir := os.Getenv("GOPS_CONFIG_DIR")
	b, err := ioutil.ReadFile(filepath.Join(dir, strconv.Itoa(os.Getpid())))
	if err != nil {
		return ""
	}
	return "127.0.0.1:" + strings.TrimSpace(string(b))
}
