"""What the admin API (`api/`) and the dashboard (`ui/`) share, one layer under both and above
the gateway: who is calling (`auth`), naming them in the audit log (`audit`), reading a JSON body
(`body`), the trace and usage query parameters (`queries`), which exceptions mean a backend is
down (`outage`), and the one admin route helper (`admin`)."""
