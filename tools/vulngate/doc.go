// Command vulngate is CI's gate on govulncheck's findings (make vulncheck,
// tools/vulncheck.sh).
//
// It reads govulncheck's JSON output (-format json) on
// stdin, prints every vulnerability whose vulnerable code the module
// calls, and exits 1 if one of them is not in the allow file. The allow
// file has one OSV ID per line followed by the reason it may stay; '#'
// starts a comment. An entry that no longer matches a finding is
// reported, so the list does not rot.
//
// Imports (podrouter): none.
package main
