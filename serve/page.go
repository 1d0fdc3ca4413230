package serve

import (
	_ "embed"
	"fmt"
	"html/template"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"
)

//go:embed page.html
var pageText string

// pageTemplate renders a Status; html/template escapes every value.
var pageTemplate = template.Must(template.New("page").Funcs(template.FuncMap{
	"num":     formatNumber,
	"raw":     rawNumber,
	"seconds": formatSeconds,
	"nonzero": func(v *float64) bool { return v != nil && *v != 0 },
	"time":    func(t time.Time) string { return t.Format("2006-01-02 15:04:05Z") },
	"refresh": func(d time.Duration) int { return max(1, int(d.Round(time.Second)/time.Second)) },
}).Parse(pageText))

// pageData is what the template sees.
type pageData struct {
	Status
	Refresh time.Duration
	Recent  int
}

func (h *Handler) page(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	var b strings.Builder
	if err := pageTemplate.Execute(&b, pageData{Status: h.Status(r.Context()), Refresh: h.cfg.Refresh, Recent: h.cfg.Recent}); err != nil {
		h.cfg.Logger.Error("serve: rendering the status page", "error", err)
		http.Error(w, "rendering the status page failed", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; img-src 'self'")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Write([]byte(b.String()))
}

// rawNumber is v as /metrics would write it ("" when absent): the page's
// data-value attributes, which a test compares with /metrics.
func rawNumber(v *float64) string {
	if v == nil {
		return ""
	}
	return strconv.FormatFloat(*v, 'g', -1, 64)
}

// none marks a value without a series.
const none = template.HTML(`<span class="none">–</span>`)

// formatNumber is v for people: whole numbers grouped by thousands, others
// to three significant digits, a muted "–" when absent.
func formatNumber(v *float64) template.HTML {
	if v == nil {
		return none
	}
	x := *v
	if x != math.Trunc(x) || math.Abs(x) >= 1e15 {
		return template.HTML(strconv.FormatFloat(x, 'g', 3, 64)) // digits, '.', 'e', '+', '-' only
	}
	s := strconv.FormatInt(int64(math.Abs(x)), 10)
	var b strings.Builder
	if x < 0 {
		b.WriteByte('-')
	}
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteString("\u202f") // narrow no-break space
		}
		b.WriteRune(c)
	}
	return template.HTML(b.String()) // digits and spaces only
}

// formatSeconds is a duration in seconds for people, a muted "–" when
// absent.
func formatSeconds(v *float64) template.HTML {
	if v == nil || math.IsNaN(*v) || math.IsInf(*v, 0) {
		return none
	}
	s := *v
	var out string
	switch {
	case s == 0:
		out = "0"
	case s < 1:
		out = fmt.Sprintf("%.3g ms", s*1000)
	case s < 120:
		out = fmt.Sprintf("%.3g s", s)
	default:
		out = time.Duration(s * float64(time.Second)).Round(time.Second).String()
	}
	return template.HTML(template.HTMLEscapeString(out))
}
