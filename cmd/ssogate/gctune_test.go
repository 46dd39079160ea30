package main

import (
	"bytes"
	"log/slog"
	"runtime/debug"
	"strings"
	"testing"
)

func currentGCPercent() int {
	p := debug.SetGCPercent(-1)
	debug.SetGCPercent(p)
	return p
}

func TestTuneGC(t *testing.T) {
	before := currentGCPercent()
	t.Cleanup(func() { debug.SetGCPercent(before) })

	debug.SetGCPercent(100)
	var out bytes.Buffer
	tuneGC(mapEnv(map[string]string{}), slog.New(slog.NewJSONHandler(&out, nil)))
	if got := currentGCPercent(); got != serveGCPercent {
		t.Errorf("GOGC unset: GC percent %d, want %d", got, serveGCPercent)
	}
	if !strings.Contains(out.String(), `"gogc":400`) || !strings.Contains(out.String(), `"gogc_from":"default"`) {
		t.Errorf("log line does not say the collector's setting: %s", out.String())
	}

	debug.SetGCPercent(150) // as the runtime would have applied GOGC=150
	out.Reset()
	tuneGC(mapEnv(map[string]string{"GOGC": "150"}), slog.New(slog.NewJSONHandler(&out, nil)))
	if got := currentGCPercent(); got != 150 {
		t.Errorf("GOGC=150 set: GC percent %d, want it left at 150", got)
	}
	if !strings.Contains(out.String(), `"gogc_from":"environment"`) {
		t.Errorf("log line: %s", out.String())
	}
}
