module github.com/ssogate/ssogate

go 1.26.8
