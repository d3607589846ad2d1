module gotop.bench/genprofile

go 1.18
