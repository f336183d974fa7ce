package dashboard

import (
	"cmp"
	"net/url"
	"slices"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/forklift-dev/summon/pkg/apis/summon/v1beta1"
	"github.com/forklift-dev/summon/pkg/platform"
)

// phaseNone stands for a SummonPlatform that has no phase yet (the hook has not synced it, or
// Metacontroller doesn't run): in the filter's query and in the counts.
const (
	phaseNone      = "none"
	phaseNoneLabel = "No status"
)

// phases are the phases in the state machine's order (DESIGN.md 5.1), as the counts list them.
var phases = []v1beta1.Phase{
	v1beta1.PhaseInitializing, v1beta1.PhaseMigrating, v1beta1.PhaseDeploying, v1beta1.PhaseReady, v1beta1.PhaseError,
}

// fleetQuery is what the fleet page is asked for: its filters, search and order. Its URL form is
// the page's query string, so a filtered view can be bookmarked and shared.
type fleetQuery struct {
	Phase     string
	Namespace string
	Version   string
	Search    string
	// Sort names a column; "" is the default order, trouble first.
	Sort string
	Desc bool
}

func parseFleetQuery(v url.Values) fleetQuery {
	q := fleetQuery{
		Phase:     strings.TrimSpace(v.Get("phase")),
		Namespace: strings.TrimSpace(v.Get("namespace")),
		Version:   strings.TrimSpace(v.Get("version")),
		Search:    strings.TrimSpace(v.Get("q")),
		Desc:      v.Get("order") == "desc",
	}
	if _, ok := columnBy(v.Get("sort")); ok {
		q.Sort = v.Get("sort")
	}
	return q
}

// values is the query as a query string's values; empty fields are left out.
func (q fleetQuery) values() url.Values {
	v := url.Values{}
	for k, s := range map[string]string{"phase": q.Phase, "namespace": q.Namespace, "version": q.Version, "q": q.Search, "sort": q.Sort} {
		if s != "" {
			v.Set(k, s)
		}
	}
	if q.Desc && q.Sort != "" {
		v.Set("order", "desc")
	}
	return v
}

// href is the fleet page's address for the query.
func (q fleetQuery) href() string {
	if enc := q.values().Encode(); enc != "" {
		return "/?" + enc
	}
	return "/"
}

// Filtered says whether anything but the order narrows the list.
func (q fleetQuery) Filtered() bool {
	return q.Phase != "" || q.Namespace != "" || q.Version != "" || q.Search != ""
}

// fleetRow is one SummonPlatform on the fleet page.
type fleetRow struct {
	Namespace, Name, Href      string
	Wanted, Migrated, Deployed string
	// Phase is the status's phase, or phaseNoneLabel.
	Phase           string
	PhaseClass      string
	MigrationFailed bool
	// Trouble is an Error or a failed migration: such rows come first.
	Trouble bool
	// Ready is the Ready condition's status ("True", "False", "Unknown"), or "" without one.
	Ready        string
	ReadyReason  string
	ReadyMessage string
	// Changed is the last transition of any condition: when the instance's state last moved.
	Changed    time.Time
	ChangedAge string
	// Stale says that the status is older than the spec (the hook has not synced the latest
	// generation yet).
	Stale    bool
	Deleting bool
	Paused   bool
	// Problem is why the object or its spec can't be read.
	Problem string
	// search is what the search box matches, lower case.
	search string
}

// phaseCount is one phase in the counts at the top of the fleet page, a link that filters to it.
type phaseCount struct {
	Phase  string
	Class  string
	Count  int
	Href   string
	Active bool
}

// column is one sortable column heading.
type column struct {
	Key   string
	Label string
	Href  string
	// Order is "asc" or "desc" on the column the list is sorted by, "" on the others.
	Order string
}

// option is one choice of a filter.
type option struct {
	Value, Label string
	Selected     bool
}

// fleetModel is the fleet page.
type fleetModel struct {
	Query      fleetQuery
	Total      int
	Counts     []phaseCount
	Columns    []column
	Rows       []fleetRow
	Phases     []option
	Namespaces []option
	Versions   []option
	ClearHref  string
}

// columns are the sortable columns, in the table's order.
var columns = []struct {
	key, label string
	less       func(a, b *fleetRow) int
}{
	{"name", "Name", func(a, b *fleetRow) int { return strings.Compare(a.Name, b.Name) }},
	{"namespace", "Namespace", func(a, b *fleetRow) int { return strings.Compare(a.Namespace, b.Namespace) }},
	{"wanted", "Wanted", func(a, b *fleetRow) int { return naturalCompare(a.Wanted, b.Wanted) }},
	{"migrated", "Migrated", func(a, b *fleetRow) int { return naturalCompare(a.Migrated, b.Migrated) }},
	{"deployed", "Deployed", func(a, b *fleetRow) int { return naturalCompare(a.Deployed, b.Deployed) }},
	{"phase", "Phase", func(a, b *fleetRow) int { return cmp.Compare(phaseRank(a.Phase), phaseRank(b.Phase)) }},
	{"ready", "Ready", func(a, b *fleetRow) int { return strings.Compare(a.Ready+a.ReadyReason, b.Ready+b.ReadyReason) }},
	{"changed", "Last change", func(a, b *fleetRow) int { return a.Changed.Compare(b.Changed) }},
}

func columnBy(key string) (func(a, b *fleetRow) int, bool) {
	for _, c := range columns {
		if c.key == key {
			return c.less, true
		}
	}
	return nil, false
}

func phaseRank(p string) int {
	for i, ph := range phases {
		if string(ph) == p {
			return i
		}
	}
	return len(phases)
}

// fleetPage builds the fleet page: every SummonPlatform that passes the query's filters, in its
// order, with the counts of the whole fleet.
func fleetPage(ps []Platform, q fleetQuery, now time.Time) fleetModel {
	m := fleetModel{Query: q, Total: len(ps), ClearHref: fleetQuery{Sort: q.Sort, Desc: q.Desc}.href()}
	counts := map[string]int{}
	namespaces, versions := map[string]bool{}, map[string]bool{}
	all := make([]fleetRow, 0, len(ps))
	for _, p := range ps {
		r := fleetRowOf(p, now)
		counts[r.Phase]++
		namespaces[r.Namespace] = true
		for _, v := range []string{r.Wanted, r.Migrated, r.Deployed} {
			if v != "" {
				versions[v] = true
			}
		}
		all = append(all, r)
	}
	for _, r := range all {
		if q.matches(r) {
			m.Rows = append(m.Rows, r)
		}
	}
	sortRows(m.Rows, q)

	for _, ph := range phases {
		m.Counts = append(m.Counts, q.phaseCount(string(ph), string(ph), counts[string(ph)]))
	}
	if n := counts[phaseNoneLabel]; n > 0 {
		m.Counts = append(m.Counts, q.phaseCount(phaseNoneLabel, phaseNone, n))
	}
	m.Phases = append(m.Phases, option{Value: "", Label: "every phase", Selected: q.Phase == ""})
	for _, c := range m.Counts {
		value := c.Phase
		if c.Phase == phaseNoneLabel {
			value = phaseNone
		}
		m.Phases = append(m.Phases, option{Value: value, Label: c.Phase, Selected: q.Phase == value})
	}
	m.Namespaces = options(namespaces, q.Namespace, "every namespace", strings.Compare)
	m.Versions = options(versions, q.Version, "every version", func(a, b string) int { return -naturalCompare(a, b) })
	for _, c := range columns {
		col := column{Key: c.key, Label: c.label}
		next := q
		next.Sort, next.Desc = c.key, false
		if q.Sort == c.key {
			col.Order = "asc"
			if q.Desc {
				col.Order = "desc"
			}
			next.Desc = !q.Desc
		}
		col.Href = next.href()
		m.Columns = append(m.Columns, col)
	}
	return m
}

func (q fleetQuery) phaseCount(label, value string, n int) phaseCount {
	next := q
	next.Phase = value
	if q.Phase == value {
		next.Phase = ""
	}
	return phaseCount{Phase: label, Class: phaseClass(label), Count: n, Href: next.href(), Active: q.Phase == value}
}

func options(set map[string]bool, selected, all string, order func(a, b string) int) []option {
	values := make([]string, 0, len(set))
	for v := range set {
		values = append(values, v)
	}
	// A filter the fleet no longer has (a bookmarked version since retired) stays selectable.
	if selected != "" && !set[selected] {
		values = append(values, selected)
	}
	slices.SortFunc(values, order)
	out := []option{{Value: "", Label: all, Selected: selected == ""}}
	for _, v := range values {
		out = append(out, option{Value: v, Label: v, Selected: v == selected})
	}
	return out
}

func fleetRowOf(p Platform, now time.Time) fleetRow {
	st := p.Status
	r := fleetRow{
		Namespace:       p.Meta.Namespace,
		Name:            p.Meta.Name,
		Href:            instanceHref(p.Meta.Namespace, p.Meta.Name),
		Wanted:          p.Spec.Version,
		Migrated:        st.MigratedVersion,
		Deployed:        st.DeployedVersion,
		Phase:           string(st.Phase),
		MigrationFailed: platform.MigrationFailed(st),
		Stale:           st.Phase != "" && st.ObservedGeneration < p.Meta.Generation,
		Deleting:        p.Meta.DeletionTimestamp != nil,
		Paused:          p.Spec.Paused,
		Problem:         problemOf(p),
	}
	if r.Phase == "" {
		r.Phase = phaseNoneLabel
	}
	r.PhaseClass = phaseClass(r.Phase)
	r.Trouble = st.Phase == v1beta1.PhaseError || r.MigrationFailed
	if c := meta.FindStatusCondition(st.Conditions, v1beta1.ConditionReady); c != nil {
		r.Ready, r.ReadyReason, r.ReadyMessage = string(c.Status), c.Reason, c.Message
	}
	r.Changed = lastTransition(st.Conditions)
	r.ChangedAge = age(now, r.Changed)
	r.search = strings.ToLower(strings.Join([]string{
		r.Namespace, r.Name, p.Spec.Hostname, strings.Join(p.Spec.Aliases, " "),
		r.Wanted, r.Migrated, r.Deployed, r.Phase, r.ReadyReason, r.ReadyMessage, st.Message,
	}, "\n"))
	return r
}

func problemOf(p Platform) string {
	if p.ReadErr != "" {
		return p.ReadErr
	}
	if p.SpecErr != nil {
		return p.SpecErr.Error()
	}
	return ""
}

func lastTransition(conds []metav1.Condition) time.Time {
	var last time.Time
	for _, c := range conds {
		if t := c.LastTransitionTime.Time; t.After(last) {
			last = t
		}
	}
	return last
}

func (q fleetQuery) matches(r fleetRow) bool {
	switch {
	case q.Phase == phaseNone && r.Phase != phaseNoneLabel:
		return false
	case q.Phase != "" && q.Phase != phaseNone && r.Phase != q.Phase:
		return false
	case q.Namespace != "" && r.Namespace != q.Namespace:
		return false
	case q.Version != "" && r.Wanted != q.Version && r.Migrated != q.Version && r.Deployed != q.Version:
		return false
	}
	for _, word := range strings.Fields(strings.ToLower(q.Search)) {
		if !strings.Contains(r.search, word) {
			return false
		}
	}
	return true
}

// sortRows orders the rows: by the chosen column, or by default with every instance in Error or
// with a failed migration first. Namespace and name break every tie, so the order is total and
// never flickers between two renders.
func sortRows(rows []fleetRow, q fleetQuery) {
	byColumn, chosen := columnBy(q.Sort)
	slices.SortFunc(rows, func(a, b fleetRow) int {
		if chosen {
			c := byColumn(&a, &b)
			if q.Desc {
				c = -c
			}
			if c != 0 {
				return c
			}
		} else if a.Trouble != b.Trouble {
			if a.Trouble {
				return -1
			}
			return 1
		}
		if c := strings.Compare(a.Namespace, b.Namespace); c != 0 {
			return c
		}
		return strings.Compare(a.Name, b.Name)
	})
}

// phaseClass is the CSS class of a phase's badge.
func phaseClass(phase string) string {
	switch v1beta1.Phase(phase) {
	case v1beta1.PhaseReady:
		return "phase-ready"
	case v1beta1.PhaseError:
		return "phase-error"
	case v1beta1.PhaseMigrating, v1beta1.PhaseDeploying, v1beta1.PhaseInitializing:
		return "phase-progress"
	}
	return "phase-none"
}

// instanceHref is the address of an instance's page.
func instanceHref(namespace, name string) string {
	return "/instances/" + url.PathEscape(namespace) + "/" + url.PathEscape(name)
}
