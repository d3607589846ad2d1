package main

import (
	"io/ioutil"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// agentListenAddr reads back the port the agent wrote to its port file, the
// only place the gops agent API reveals it. The directory is chosen as gops
// does: $GOPS_CONFIG_DIR, else os.UserConfigDir()/gops.
func agentListenAddr() string {
	dir := os.Getenv("GOPS_CONFIG_DIR")
	if dir == "" {
		userDir, err := os.UserConfigDir()
		if err != nil {
			return ""
		}
		dir = filepath.Join(userDir, "gops")
	}
	b, err := ioutil.ReadFile(filepath.Join(dir, strconv.Itoa(os.Getpid())))
	if err != nil {
		return ""
	}
	return "127.0.0.1:" + strings.TrimSpace(string(b))
}
