"""The example Go programs of `gotop demo` (installed as gotop.examples)."""
