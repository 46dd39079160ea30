package server

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
)

// checkReturnTo decides whether the browser may be sent to returnTo after a
// login: it must be an absolute http(s) URL with the same scheme and host
// (port included) as one allowed entry, and a path equal to the entry's or
// below it at a "/" boundary. Anything looser is an open redirect. It
// returns the URL to use, normalised.
func checkReturnTo(returnTo string, allowed []string) (*url.URL, error) {
	if strings.ContainsAny(returnTo, "\\\r\n\t") || strings.ContainsRune(returnTo, 0) {
		return nil, errors.New("return_to contains a backslash or a control character")
	}
	u, err := url.Parse(returnTo)
	if err != nil {
		return nil, fmt.Errorf("return_to is not a URL: %w", err)
	}
	if u.Scheme != "https" && u.Scheme != "http" || u.Host == "" || u.Opaque != "" {
		return nil, fmt.Errorf("return_to %q must be an absolute http(s) URL", returnTo)
	}
	if u.User != nil {
		return nil, fmt.Errorf("return_to %q must not carry user information", returnTo)
	}
	if u.Fragment != "" {
		return nil, fmt.Errorf("return_to %q must not carry a fragment", returnTo)
	}
	path := u.EscapedPath()
	if path == "" {
		path = "/"
	}
	if strings.Contains(path, "/../") || strings.HasSuffix(path, "/..") || strings.Contains(strings.ToLower(path), "%2e%2e") || strings.Contains(strings.ToLower(path), "%2f") {
		return nil, fmt.Errorf("return_to %q has a path that climbs or hides a separator", returnTo)
	}
	for _, entry := range allowed {
		a, err := url.Parse(entry)
		if err != nil || a.Host == "" {
			continue
		}
		if !strings.EqualFold(a.Scheme, u.Scheme) || !strings.EqualFold(a.Host, u.Host) {
			continue
		}
		prefix := a.EscapedPath()
		if prefix == "" || prefix == "/" || path == prefix ||
			strings.HasPrefix(path, strings.TrimSuffix(prefix, "/")+"/") {
			return u, nil
		}
	}
	return nil, fmt.Errorf("return_to %q is not under any of the connection's allowed return URLs %q", returnTo, allowed)
}
