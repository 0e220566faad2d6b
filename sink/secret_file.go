package sink

import (
	"fmt"
	"os"
	"strings"
)

// ReadSecretFile sets *value from file, for a `<field>_file` key that reads a secret
// from a file (Kubernetes and Docker secrets); a trailing newline is dropped. It does
// nothing when file is empty, and refuses a value that is set too. field is the YAML key
// of the value ("password", "sasl.password"), for errors.
func ReadSecretFile(field string, value *string, file string) error {
	if file == "" {
		return nil
	}
	if *value != "" {
		return fmt.Errorf("%s and %s_file are both set; use one", field, field)
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return fmt.Errorf("%s_file: %w", field, err)
	}
	*value = strings.TrimRight(string(b), "\r\n")
	return nil
}
