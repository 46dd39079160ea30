package server

import "testing"

func TestCheckReturnTo(t *testing.T) {
	allowed := []string{"https://app.example.com/callback", "http://localhost:3000/"}
	tests := []struct {
		returnTo string
		ok       bool
	}{
		{"https://app.example.com/callback", true},
		{"https://app.example.com/callback/deep?x=1", true},
		{"https://APP.example.com/callback", true},
		{"http://localhost:3000/anything", true},
		{"https://app.example.com/callbackevil", false},
		{"https://app.example.com/other", false},
		{"http://app.example.com/callback", false},       // scheme downgrade
		{"https://app.example.com:8443/callback", false}, // other port
		{"https://app.example.com.evil.com/callback", false},
		{"https://evil.com/callback", false},
		{"//evil.com/callback", false},
		{"/callback", false},
		{"https://app.example.com@evil.com/callback", false},
		{"https://user@app.example.com/callback", false},
		{"https:\\\\evil.com/callback", false},
		{"https://app.example.com/callback/../admin", false},
		{"https://app.example.com/callback/%2e%2e/admin", false},
		{"https://app.example.com/callback%2F..%2Fadmin", false},
		{"javascript:alert(1)", false},
		{"https://app.example.com/callback#frag", false},
		{"https://app.example.com/callback\n", false},
	}
	for _, tc := range tests {
		t.Run(tc.returnTo, func(t *testing.T) {
			_, err := checkReturnTo(tc.returnTo, allowed)
			if (err == nil) != tc.ok {
				t.Fatalf("checkReturnTo(%q) error = %v, want ok=%v", tc.returnTo, err, tc.ok)
			}
		})
	}
}
