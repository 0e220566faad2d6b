package main

import (
	"bytes"
	"context"
	"fmt"
	"io"

	"go.yaml.in/yaml/v3"

	"github.com/conveyorhq/conveyor/telemetry"
)

func configCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return dispatch("config", "Inspect the configuration the relay would run with.", []subcommand{
		{"print", "print the effective configuration as YAML, secrets redacted", configPrintCmd},
	}, ctx, args, stdout, stderr)
}

func configPrintCmd(_ context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("config print", "Print the effective configuration: the --config files merged in order, the\n"+
		"CONVEYOR_SECTION__KEY environment overrides and ${VAR} interpolation applied, defaults\n"+
		"filled in. Passwords, tokens and URL credentials print as REDACTED. Validation errors\n"+
		"name the field and where it was set, and exit 1.", stderr)
	files := configFlag(fs)
	if err := parse(fs, args); err != nil {
		return err
	}
	c, err := loadConfig(*files)
	if err != nil {
		return err
	}
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(c.Redacted()); err != nil {
		return fmt.Errorf("print config: %w", err)
	}
	if err := enc.Close(); err != nil {
		return fmt.Errorf("print config: %w", err)
	}
	b := buf.Bytes()
	// Belt and braces: a secret a sink's Redacted missed still never prints. (Very short
	// values would garble the output and are redacted by Redacted anyway.)
	var secrets []string
	for _, s := range c.Secrets() {
		if len(s) >= 4 {
			secrets = append(secrets, s)
		}
	}
	_, err = io.WriteString(stdout, telemetry.Scrub(string(b), secrets))
	return err
}
