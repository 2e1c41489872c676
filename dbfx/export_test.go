package dbfx

// InferDriver exposes the DSN sniffing to the tests.
var InferDriver = inferDriver
