package main

import (
	"bytes"
	"encoding/json"
	"testing"
)

func TestAboutSandbox(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		v    any
		want string
	}{
		{map[string]any{"b": "<&>", "a": 1}, `{"sessionId":"s<>","a":1,"b":"<&>"}`},
		{struct{}{}, `{"sessionId":"s<>"}`},
		{[]int{1}, ""},
		{nil, ""},
	} {
		var b bytes.Buffer
		enc := json.NewEncoder(&b)
		enc.SetEscapeHTML(false)
		err := enc.Encode(aboutSandbox{id: "s<>", v: tc.v})
		if tc.want == "" {
			if err == nil {
				t.Errorf("%v: encoded %s, want an error", tc.v, b.String())
			}
			continue
		}
		if err != nil || b.String() != tc.want+"\n" {
			t.Errorf("%v: got %q, %v; want %s", tc.v, b.String(), err, tc.want)
		}
	}
}
