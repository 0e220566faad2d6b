package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
)

// timing is one row of bench/write_cost.py's output.
type timing struct {
	N      int     `json:"n"`
	MeanUs float64 `json:"mean_us"`
	P50Us  float64 `json:"p50_us"`
	P99Us  float64 `json:"p99_us"`
}

// writeCostResult is bench/write_cost.py's JSON: section -> label -> timing.
type writeCostResult struct {
	Sections map[string]map[string]timing `json:"sections"`
	Error    string                       `json:"error,omitempty"`
}

// writeCost runs the Python write-side measurement (Django transactions with and
// without publish(), publish_many against publish(), the NOTIFY trigger).
func (b *bench) writeCost(ctx context.Context) {
	out := filepath.Join(b.scratch, "write_cost.json")
	cmd := exec.CommandContext(ctx, b.python, filepath.Join(b.root, "bench", "write_cost.py"),
		"--transactions", fmt.Sprint(b.sz.WriteTx), "--json", out)
	cmd.Dir = b.root
	res := &writeCostResult{}
	b.report.WriteCost = res
	if o, err := cmd.CombinedOutput(); err != nil {
		res.Error = fmt.Sprintf("%v: %s", err, lastLines(string(o), 5))
		b.logf("  write cost: %s", res.Error)
		return
	}
	data, err := os.ReadFile(out)
	if err == nil {
		err = json.Unmarshal(data, &res.Sections)
	}
	if err != nil {
		res.Error = err.Error()
		return
	}
	if one := res.Sections["one_row"]; one != nil {
		b.logf("  1 row (ORM): %.0f µs, + publish(): %.0f µs", one["1 row (ORM)"].MeanUs, one["1 row (ORM) + publish()"].MeanUs)
	}
}
