// Package ready tells the test harness that a target is up and how to reach it.
//
// A target prints exactly one line to stdout once every listener is open:
//
//	READY {"pid":123,"agent":"127.0.0.1:41234","http":"127.0.0.1:41235"}
//
// and nothing else on stdout afterwards.
package ready

import (
	"encoding/json"
	"fmt"
	"os"
)

// Announce prints the READY line with the given addresses (empty ones are omitted).
func Announce(agentAddr, httpAddr string) {
	msg := map[string]interface{}{"pid": os.Getpid()}
	if agentAddr != "" {
		msg["agent"] = agentAddr
	}
	if httpAddr != "" {
		msg["http"] = httpAddr
	}
	line, err := json.Marshal(msg)
	if err != nil {
		panic(err)
	}
	fmt.Printf("READY %s\n", line)
}
