package statuspage

import (
	_ "embed"
	"encoding/json"
	"fmt"
	"html/template"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/camelot/lancelot/supervisor"
)

// refreshSeconds is how often the page reloads itself.
const refreshSeconds = 2

//go:embed page.html
var pageSource string

// Register adds GET / (the page) and GET /status.json to mux; status
// returns the state to show.
func Register(mux *http.ServeMux, status func() supervisor.Status) {
	page := template.Must(template.New("page").Parse(pageSource))
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, _ *http.Request) {
		servePage(w, page, status())
	})
	mux.HandleFunc("GET /status.json", func(w http.ResponseWriter, _ *http.Request) {
		serveJSON(w, status())
	})
}

// serveJSON writes st as the admin socket's status command does, with a
// newline as `lancelot status --json` prints it.
func serveJSON(w http.ResponseWriter, st supervisor.Status) {
	b, err := json.Marshal(st)
	if err != nil {
		http.Error(w, fmt.Sprintf("status: %v", err), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.Write(append(b, '\n'))
}

// servePage renders the page into memory first, so that a template error
// is a 500, not half a page.
func servePage(w http.ResponseWriter, page *template.Template, st supervisor.Status) {
	var b strings.Builder
	if err := page.Execute(&b, newView(st)); err != nil {
		http.Error(w, fmt.Sprintf("status page: %v", err), http.StatusInternalServerError)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	// Belt and braces: even an escaping mistake could run nothing and
	// fetch nothing.
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
	h.Set("X-Content-Type-Options", "nosniff")
	w.Write([]byte(b.String()))
}

// view is what the page shows, formatted.
type view struct {
	Refresh               int
	PID                   int
	Version, Revision, Go string
	State, StateClass     string
	Uptime                string
	Running, Configured   int
	Rollout               string
	Queued                int
	Upgrade               bool
	Successor             int
	ConfigFile            string
	Addresses             []string
	Restarts              uint64
	Connections           int64
	QuestionsPerSecond    string
	Rows                  []row
	Sockets               []socketRow
	Retiring              string
}

// row is one worker slot.
type row struct {
	Slot                 int
	PID                  string
	State, StateClass    string
	Version              string
	Uptime               string
	Connections          int64
	QuestionsPerSecond   string
	HandedOver, Restarts uint64
	Serving, Lent        string
	Next                 string
}

// socketRow is one listening socket.
type socketRow struct {
	ID       int
	Addr     string
	ServedBy string
	Retiring bool
}

func newView(st supervisor.Status) view {
	v := view{
		Refresh: refreshSeconds, PID: st.PID, Version: st.Version.Version, Revision: short(st.Version.Revision), Go: st.Version.Go,
		State: st.State, StateClass: supervisorClass(st.State), Uptime: duration(st.UptimeSeconds),
		Running: st.Running, Configured: st.Configured, Rollout: st.Rollout, Queued: st.Queued,
		Upgrade: st.Upgrade, Successor: st.Successor, ConfigFile: st.ConfigFile, Restarts: st.Restarts,
		Retiring: ints(st.Retiring),
	}
	var qps float64
	for _, sl := range st.Slots {
		v.Rows = append(v.Rows, newRow(sl))
		v.Connections += sl.Connections
		qps += sl.QuestionsPerSecond
	}
	v.QuestionsPerSecond = rate(qps)
	for _, sock := range st.Sockets {
		if !slices.Contains(v.Addresses, sock.Addr) {
			v.Addresses = append(v.Addresses, sock.Addr)
		}
		v.Sockets = append(v.Sockets, socketRow{ID: sock.ID, Addr: sock.Addr, ServedBy: ints(sock.ServedBy), Retiring: sock.Retiring})
	}
	return v
}

func newRow(sl supervisor.SlotStatus) row {
	r := row{
		Slot: sl.Slot, PID: "–", State: sl.State, StateClass: workerClass(sl.State), Version: sl.Version,
		Uptime: duration(sl.UptimeSeconds), Connections: sl.Connections, QuestionsPerSecond: rate(sl.QuestionsPerSecond),
		HandedOver: sl.HandedOver, Restarts: sl.Restarts, Serving: ints(sl.Serving), Lent: ints(sl.Lent),
	}
	if sl.PID != 0 {
		r.PID = fmt.Sprint(sl.PID)
	}
	if sl.Next != 0 {
		r.Next = fmt.Sprint(sl.Next)
	}
	return r
}

// workerClass colours a worker's state: green serving, amber on its way,
// red not serving.
func workerClass(state string) string {
	switch state {
	case "ready":
		return "ok"
	case "starting", "draining":
		return "warn"
	}
	return "bad"
}

func supervisorClass(state string) string {
	switch state {
	case "serving":
		return "ok"
	case "starting", "taking-over", "draining":
		return "warn"
	}
	return "bad"
}

func duration(seconds float64) string {
	if seconds <= 0 {
		return "–"
	}
	return (time.Duration(seconds * float64(time.Second))).Round(time.Second).String()
}

func rate(perSecond float64) string {
	return fmt.Sprintf("%.1f", perSecond)
}

func short(revision string) string {
	if len(revision) > 12 {
		return revision[:12]
	}
	return revision
}

// ints lists ns, or a dash for none.
func ints(ns []int) string {
	if len(ns) == 0 {
		return "–"
	}
	s := make([]string, len(ns))
	for i, n := range ns {
		s[i] = fmt.Sprint(n)
	}
	return strings.Join(s, " ")
}
