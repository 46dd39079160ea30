"""Times python3-saml (OneLogin, libxml2 + xmlsec1) on responses that
BenchmarkAgainstPython3SAML wrote, and prints one line per response:
name, CPU microseconds per validation (the batch's process CPU time
divided by its size), rounds.

    /usr/bin/python3 python3saml_bench.py DIR ROUNDS
"""
import json
import os
import sys
import time

from onelogin.saml2.response import OneLogin_Saml2_Response
from onelogin.saml2.settings import OneLogin_Saml2_Settings
from onelogin.saml2.utils import OneLogin_Saml2_Utils


def main():
    d, rounds = sys.argv[1], int(sys.argv[2])
    params = json.load(open(os.path.join(d, "params.json")))
    # The responses were issued at a pinned instant: validate at it.
    OneLogin_Saml2_Utils.now = staticmethod(lambda: params["now"])
    settings = OneLogin_Saml2_Settings({
        "strict": True,
        "sp": {
            "entityId": params["sp_entity_id"],
            "assertionConsumerService": {"url": params["acs_url"]},
        },
        "idp": {
            "entityId": params["idp_entity_id"],
            "singleSignOnService": {"url": "https://idp.example.com/sso"},
            "x509cert": params["idp_cert"],
        },
        "security": {"wantAssertionsSigned": True, "rejectDeprecatedAlgorithm": True},
    }, sp_validation_only=True)
    request_data = {"https": "on", "http_host": params["host"], "script_name": params["acs_path"], "server_port": "443"}
    for name in params["names"]:
        form = open(os.path.join(d, name + ".b64")).read()
        start = time.process_time_ns()
        for _ in range(rounds):
            resp = OneLogin_Saml2_Response(settings, form)
            if not resp.is_valid(request_data, request_id=params["request_id"], raise_exceptions=True):
                raise SystemExit("%s: python3-saml refused: %s" % (name, resp.get_error()))
        print(name, (time.process_time_ns() - start) / 1000.0 / rounds, rounds)


main()
