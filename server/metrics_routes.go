package server

// The route table of the metrics: which operation of the contract a
// request is for, found without allocating, so that every request can be
// counted by its operationId.

import (
	"bufio"
	"bytes"
	"net/http"
	"strings"

	"github.com/noxrunner/nox/api"
)

// otherOperation labels requests for no operation of the contract.
const otherOperation = "other"

// routeNode is one path segment of the route table: its literal children,
// its parameter child, and the operations that end here by method. A
// tail node (the ports proxy's {path}) matches the rest of any path and
// every method.
type routeNode struct {
	lit   map[string]*routeNode
	param *routeNode
	ops   map[string]*opMetrics
	tail  *opMetrics
}

// routeTable maps a request to its operation's metrics.
type routeTable struct {
	root  routeNode
	other *opMetrics
}

// contractRoute is one operation of the contract: its method, path
// template and operationId.
type contractRoute struct{ method, path, id string }

// contractRoutes lists the operations of api/openapi.yaml. It reads the
// document's lines (paths at two spaces, methods at four, operationId at
// six) rather than loading it with an OpenAPI library, which takes a
// hundred times longer; TestContractRoutes checks it against the loaded
// document.
func contractRoutes(doc []byte) []contractRoute {
	var out []contractRoute
	var path, method string
	inPaths := false
	s := bufio.NewScanner(bytes.NewReader(doc))
	s.Buffer(nil, 1<<20)
	for s.Scan() {
		line := s.Text()
		switch {
		case line == "paths:":
			inPaths = true
		case !inPaths:
		case len(line) > 0 && line[0] != ' ' && line[0] != '#':
			inPaths = false
		case strings.HasPrefix(line, "  /") && strings.HasSuffix(line, ":") && !strings.HasPrefix(line, "   "):
			path, method = strings.TrimSuffix(line[2:], ":"), ""
		case strings.HasPrefix(line, "    ") && !strings.HasPrefix(line, "     ") && strings.HasSuffix(line, ":"):
			m := strings.ToUpper(strings.TrimSuffix(strings.TrimSpace(line), ":"))
			method = ""
			switch m {
			case http.MethodGet, http.MethodPut, http.MethodPost, http.MethodDelete, http.MethodPatch, http.MethodHead, http.MethodOptions:
				method = m
			}
		case method != "" && strings.HasPrefix(line, "      operationId:"):
			id := strings.TrimSpace(strings.TrimPrefix(line, "      operationId:"))
			out = append(out, contractRoute{method: method, path: path, id: strings.Trim(id, `"'`)})
			method = ""
		}
	}
	return out
}

// newRouteTable builds the table of the contract's operations, each with
// its metrics from newOp.
func newRouteTable(newOp func(id string) *opMetrics) *routeTable {
	t := &routeTable{other: newOp(otherOperation)}
	for _, r := range contractRoutes(api.OpenAPI()) {
		t.add(r, newOp(r.id))
	}
	return t
}

// add enters one operation.
func (t *routeTable) add(r contractRoute, op *opMetrics) {
	n := &t.root
	for _, seg := range strings.Split(strings.TrimPrefix(r.path, "/"), "/") {
		if strings.HasPrefix(seg, "{") {
			if n.param == nil {
				n.param = &routeNode{}
			}
			n = n.param
			if seg == "{path}" {
				// proxyPort: any method, and the rest of the path.
				n.tail = op
				return
			}
			continue
		}
		if n.lit == nil {
			n.lit = map[string]*routeNode{}
		}
		next := n.lit[seg]
		if next == nil {
			next = &routeNode{}
			n.lit[seg] = next
		}
		n = next
	}
	if n.ops == nil {
		n.ops = map[string]*opMetrics{}
	}
	n.ops[r.method] = op
}

// lookup returns the operation of a request, or t.other. HEAD falls back
// to GET. It does not allocate.
func (t *routeTable) lookup(method, path string) *opMetrics {
	rest, ok := strings.CutPrefix(path, "/")
	if !ok {
		return t.other
	}
	n := &t.root
	for {
		seg, after, more := strings.Cut(rest, "/")
		next := n.lit[seg]
		if next == nil && seg != "" {
			next = n.param
		}
		if next == nil {
			return t.other
		}
		n = next
		if n.tail != nil {
			return n.tail
		}
		if !more {
			break
		}
		rest = after
		if n.param != nil && n.param.tail != nil {
			// {port}/{path}: the rest, even empty, is the path.
			return n.param.tail
		}
	}
	if op := n.ops[method]; op != nil {
		return op
	}
	if method == http.MethodHead {
		if op := n.ops[http.MethodGet]; op != nil {
			return op
		}
	}
	return t.other
}
