package main

import (
	"fmt"
	"io"
	"os"
	"strings"
	"time"
)

// progressBar draws the run's progress on a terminal (redrawn in place), or
// writes a line every few seconds elsewhere.
type progressBar struct {
	w       io.Writer
	command string // "demo" or "torture"
	tty     bool
	drawn   bool
	last    time.Time // of the last line
	every   time.Duration
	started time.Time
	// the rate is measured between samples
	sampleAt      time.Time
	sampleApplied int64
	rate          float64
}

func newProgressBar(w io.Writer, command string) *progressBar {
	now := time.Now()
	b := &progressBar{w: w, command: command, every: 5 * time.Second, started: now, sampleAt: now}
	if f, ok := w.(*os.File); ok {
		if fi, err := f.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
			b.tty = true
		}
	}
	return b
}

// progressState is what the bar shows.
type progressState struct {
	orders, published, applied, charged, deadLettered int64
	kills                                             int
}

func (b *progressBar) update(s progressState) {
	now := time.Now()
	if dt := now.Sub(b.sampleAt).Seconds(); dt >= 1 {
		b.rate = float64(s.applied-b.sampleApplied) / dt
		b.sampleAt, b.sampleApplied = now, s.applied
	}
	if !b.tty && now.Sub(b.last) < b.every {
		return
	}
	b.last = now
	total := 2 * s.orders // applied + charged
	frac := 0.0
	if total > 0 {
		frac = float64(s.applied+s.charged) / float64(total)
	}
	const width = 24
	fill := min(int(frac*width), width)
	elapsed := now.Sub(b.started)
	rate := b.rate
	if b.sampleApplied == 0 && elapsed > 0 { // no full sample yet
		rate = float64(s.applied) / elapsed.Seconds()
	}
	line := fmt.Sprintf("[%s%s] %3.0f%%  published %d  applied %d/%d  charged %d  dead-lettered %d  kills %d  %.0f orders/s  %s",
		strings.Repeat("#", fill), strings.Repeat(".", width-fill), 100*frac,
		s.published, s.applied, s.orders, s.charged, s.deadLettered, s.kills, rate, elapsed.Round(time.Second))
	if b.tty {
		fmt.Fprint(b.w, "\r\033[K"+line)
		b.drawn = true
		return
	}
	fmt.Fprintln(b.w, "eos "+b.command+": "+line)
}

// finish ends the bar's line.
func (b *progressBar) finish() {
	if b.tty && b.drawn {
		fmt.Fprintln(b.w)
		b.drawn = false
	}
}
