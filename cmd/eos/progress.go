package main

import (
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/eoskit/eos/torture/scenario"
)

// progressBar draws a run's progress on a terminal (redrawn in place, cut
// to the terminal's width), or writes a line every few seconds elsewhere;
// no line it writes wraps.
type progressBar struct {
	w      io.Writer
	prefix string // "eos demo: ", "eos torture 2/3: "
	tty    bool
	width  int // of the terminal
	drawn  bool
	last   time.Time // of the last line
	every  time.Duration
	// the rate is measured between samples
	started       time.Time
	sampleAt      time.Time
	sampleApplied int64
	rate          float64
}

// maxLine bounds a line written where no terminal says its width.
const maxLine = 100

func newProgressBar(w io.Writer, prefix string) *progressBar {
	now := time.Now()
	b := &progressBar{w: w, prefix: prefix, every: 5 * time.Second, started: now, sampleAt: now, width: maxLine}
	if f, ok := w.(*os.File); ok {
		if fi, err := f.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
			b.tty = true
			if n := terminalWidth(f); n > 0 {
				b.width = n
			}
		}
	}
	return b
}

// barWidth is the bar's width in characters, between the brackets.
const barWidth = 20

func (b *progressBar) update(s scenario.Progress) {
	now := time.Now()
	if dt := now.Sub(b.sampleAt).Seconds(); dt >= 1 {
		b.rate = float64(s.Applied-b.sampleApplied) / dt
		b.sampleAt, b.sampleApplied = now, s.Applied
	}
	if !b.tty && now.Sub(b.last) < b.every {
		return
	}
	b.last = now
	elapsed := now.Sub(b.started)
	rate := b.rate
	if b.sampleApplied == 0 && elapsed > 0 { // no full sample yet
		rate = float64(s.Applied) / elapsed.Seconds()
	}
	line := progressLine(s, rate, elapsed)
	if !b.tty {
		fmt.Fprintln(b.w, b.prefix+line)
		return
	}
	frac := fraction(s)
	fill := min(int(frac*barWidth), barWidth)
	line = "[" + strings.Repeat("#", fill) + strings.Repeat(".", barWidth-fill) + "] " + line
	// The last column stays free: a line that fills it wraps on some
	// terminals.
	if len(line) >= b.width {
		line = line[:max(b.width-1, 0)]
	}
	fmt.Fprint(b.w, "\r\033[K"+line)
	b.drawn = true
}

// fraction is how much of the run is done: orders applied and charged.
func fraction(s scenario.Progress) float64 {
	if s.Orders == 0 {
		return 0
	}
	return min(float64(s.Applied+s.Charged)/float64(2*s.Orders), 1)
}

// progressLine is the line's text: each count at most six characters
// (count), so that the line stays under maxLine with the longest prefix.
func progressLine(s scenario.Progress, rate float64, elapsed time.Duration) string {
	return fmt.Sprintf("%3.0f%% applied %s/%s charged %s dead %s kills %s %s/s %s", 100*fraction(s),
		count(s.Applied), count(s.Orders), count(s.Charged), count(s.DeadLettered), count(int64(s.Kills)), count(int64(rate)),
		elapsed.Round(time.Second))
}

// count writes n in at most six characters: 9999, 12.3k, 4.5M, 1.2G.
func count(n int64) string {
	if n < 10_000 {
		return strconv.FormatInt(n, 10)
	}
	for _, u := range []struct {
		unit string
		of   int64
	}{{"k", 1e3}, {"M", 1e6}, {"G", 1e9}} {
		if tenths := n / (u.of / 10); tenths < 10_000 {
			return fmt.Sprintf("%d.%d%s", tenths/10, tenths%10, u.unit)
		}
	}
	return fmt.Sprintf("%dG", n/1e9)
}

// finish ends the bar's line.
func (b *progressBar) finish() {
	if b.tty && b.drawn {
		fmt.Fprintln(b.w)
		b.drawn = false
	}
}
