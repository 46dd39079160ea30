package devidp

import (
	"context"
	"fmt"
	"html"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
)

// Posted is what the IdP's auto-submitting form would post to the ACS.
type Posted struct {
	ACSURL       string
	SAMLResponse string
	RelayState   string
}

var (
	formAction  = regexp.MustCompile(`<form[^>]*action="([^"]+)"`)
	hiddenInput = regexp.MustCompile(`<input[^>]*name="(SAMLRequest|SAMLResponse|RelayState)"[^>]*value="([^"]*)"`)
)

// SignIn plays a browser without JavaScript through an SP-initiated login:
// it follows redirectURL (an AuthnRequest) to the IdP's login form, posts
// the user's credentials, and returns the response the IdP's form would
// post to the ACS. client should have a cookie jar. It is for tests and
// load generators; a real browser does the same with the forms.
func SignIn(ctx context.Context, client *http.Client, redirectURL, user, password string) (Posted, error) {
	page, err := fetch(ctx, client, http.MethodGet, redirectURL, nil)
	if err != nil {
		return Posted{}, err
	}
	action, fields, err := parseForm(page)
	if err != nil {
		return Posted{}, fmt.Errorf("devidp: login form: %w", err)
	}
	fields.Set("user", user)
	fields.Set("password", password)
	page, err = fetch(ctx, client, http.MethodPost, action, fields)
	if err != nil {
		return Posted{}, err
	}
	action, fields, err = parseForm(page)
	if err != nil || fields.Get("SAMLResponse") == "" {
		return Posted{}, fmt.Errorf("devidp: no SAMLResponse form after sign-in (wrong password?): %v", err)
	}
	return Posted{ACSURL: action, SAMLResponse: fields.Get("SAMLResponse"), RelayState: fields.Get("RelayState")}, nil
}

func fetch(ctx context.Context, client *http.Client, method, target string, form url.Values) (string, error) {
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequestWithContext(ctx, method, target, body)
	if err != nil {
		return "", fmt.Errorf("devidp: %w", err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	resp, err := client.Do(req)
	if err != nil {
		return "", fmt.Errorf("devidp: %s %s: %w", method, target, err)
	}
	defer resp.Body.Close()
	page, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return "", fmt.Errorf("devidp: read %s: %w", target, err)
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("devidp: %s %s: status %d", method, target, resp.StatusCode)
	}
	return string(page), nil
}

func parseForm(page string) (string, url.Values, error) {
	m := formAction.FindStringSubmatch(page)
	if m == nil {
		return "", nil, fmt.Errorf("no form in the page")
	}
	fields := url.Values{}
	for _, in := range hiddenInput.FindAllStringSubmatch(page, -1) {
		fields.Set(in[1], html.UnescapeString(in[2]))
	}
	return html.UnescapeString(m[1]), fields, nil
}
