module gotop.example/demo

go 1.18

require github.com/google/gops v0.3.28

require golang.org/x/sys v0.11.0 // indirect
