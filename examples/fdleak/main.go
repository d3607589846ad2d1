// fdleak leaks file descriptors: every job opens its log file and forgets to
// close it.
//
// gotop shows the open files of the process growing by about 5 a second.
package main

import (
	"log"
	"os"
	"path/filepath"
	"time"

	"gotop.example/demo/internal/serve"
)

var open []*os.File // kept so the garbage collector does not close them for us

// openJobLog opens the job's log; the fix is a defer f.Close() in the caller.
func openJobLog(dir string) *os.File {
	f, err := os.OpenFile(filepath.Join(dir, "job.log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		log.Fatal(err)
	}
	return f
}

func main() {
	serve.Diagnostics("fdleak")
	dir, err := os.MkdirTemp("", "fdleak")
	if err != nil {
		log.Fatal(err)
	}
	for len(open) < 5000 { // stop well before the open-files limit
		f := openJobLog(dir)
		f.WriteString("job done\n")
		open = append(open, f)
		time.Sleep(200 * time.Millisecond)
	}
	select {}
}
