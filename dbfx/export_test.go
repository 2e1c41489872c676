package dbfx

// InferDriver exposes the DSN sniffing to the tests.
var InferDriver = inferDriver

// WriterDSN is the DSN Open gives the writer pool for c.
func WriterDSN(c Config) (string, error) {
	r, err := c.resolve()
	if err != nil {
		return "", err
	}
	return r.writer, nil
}
