package workload

import (
	"fmt"
	"os"
	"time"
)

// Workloads that write to stderr, where the runtime's GC trace goes too (for
// gotop run and gotop check -- CMD, which must tell the two apart):
//
//   - chatty: every n ms, one numbered line ("chatty line 17") on stderr and
//     256 KiB of garbage, so that GC cycles run among the lines.
//   - crash: after n ms, one line on stderr ("crash: giving up after 300 ms")
//     and exit status 3.

func init() {
	register("chatty", func(n int) {
		go func() {
			for line := 1; ; line++ {
				fmt.Fprintf(os.Stderr, "chatty line %d\n", line)
				for i := 0; i < 64; i++ {
					sink = make([]byte, 4<<10)
				}
				time.Sleep(millis(n))
			}
		}()
	})
	register("crash", func(n int) {
		time.AfterFunc(millis(n), func() {
			fmt.Fprintf(os.Stderr, "crash: giving up after %d ms\n", n)
			os.Exit(3)
		})
	})
}
