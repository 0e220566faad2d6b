package main

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// relaySteps is what a relay's own metrics say about its cycles during a run: how
// many batches, their mean size, and the mean and approximate p99 of each step.
type relaySteps struct {
	Batches      int     `json:"batches"`
	MeanBatch    float64 `json:"mean_batch"`
	ClaimMeanMs  float64 `json:"claim_mean_ms"`
	ClaimP99Ms   float64 `json:"claim_p99_ms"` // the upper bound of the histogram bucket
	PubMeanMs    float64 `json:"publish_mean_ms"`
	PubP99Ms     float64 `json:"publish_p99_ms"`
	SettleMeanMs float64 `json:"settle_mean_ms"`
	SettleP99Ms  float64 `json:"settle_p99_ms"`
}

// scrapeSteps reads the relay's /metrics and summarises the step histograms.
func scrapeSteps(ctx context.Context, addr string) (*relaySteps, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/metrics", nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("metrics: %s", resp.Status)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		return nil, err
	}
	hist := func(name string) (count uint64, mean, p99 float64) {
		f, ok := fams[name]
		if !ok || len(f.GetMetric()) == 0 {
			return 0, 0, 0
		}
		h := f.GetMetric()[0].GetHistogram()
		count = h.GetSampleCount()
		if count == 0 {
			return 0, 0, 0
		}
		mean = h.GetSampleSum() / float64(count)
		for _, b := range h.GetBucket() {
			if float64(b.GetCumulativeCount()) >= 0.99*float64(count) {
				return count, mean, b.GetUpperBound()
			}
		}
		return count, mean, 0
	}
	s := &relaySteps{}
	var n uint64
	n, s.ClaimMeanMs, s.ClaimP99Ms = hist("conveyor_claim_duration_seconds")
	s.Batches = int(n)
	_, s.PubMeanMs, s.PubP99Ms = hist("conveyor_publish_duration_seconds")
	_, s.SettleMeanMs, s.SettleP99Ms = hist("conveyor_settle_duration_seconds")
	_, s.MeanBatch, _ = hist("conveyor_batch_size")
	for _, v := range []*float64{&s.ClaimMeanMs, &s.ClaimP99Ms, &s.PubMeanMs, &s.PubP99Ms, &s.SettleMeanMs, &s.SettleP99Ms} {
		*v *= 1000
	}
	return s, nil
}

func (s *relaySteps) String() string {
	if s == nil {
		return "no relay metrics"
	}
	return strings.Join([]string{
		fmt.Sprintf("%d batches of %.1f", s.Batches, s.MeanBatch),
		fmt.Sprintf("claim %.1f ms (p99 ≤ %.0f)", s.ClaimMeanMs, s.ClaimP99Ms),
		fmt.Sprintf("publish %.1f ms (p99 ≤ %.0f)", s.PubMeanMs, s.PubP99Ms),
		fmt.Sprintf("settle %.1f ms (p99 ≤ %.0f)", s.SettleMeanMs, s.SettleP99Ms),
	}, ", ")
}
