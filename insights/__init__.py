"""How search is doing in production: the query log, feedback on results and answers,
Prometheus metrics and the admin's "Search quality" page."""
