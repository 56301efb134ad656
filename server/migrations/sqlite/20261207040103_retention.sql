-- Retention (issue 17): the demo step's customers go with the runs that made them.
CREATE INDEX demo_customers_by_age ON demo_customers(created_ms);
