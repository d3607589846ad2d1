module gotop.test/layoutprobe

go 1.18
