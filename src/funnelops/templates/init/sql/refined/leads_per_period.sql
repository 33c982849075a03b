-- target: {{ident}}_refined.leads_per_period
-- replace: period
-- The header above: `target` is the refined table (dataset.table; `{granularity}` in the name
-- would pick daily/monthly/yearly tables instead), `replace: period` deletes the run's period
-- (rows with period_start in it and this granularity) before inserting, atomically.
-- An optional `-- granularities: MONTH, YEAR` would skip the flow in daily runs.
-- The query is one BigQuery SELECT over the trusted external tables. Parameters:
-- @granularity ('DAY', 'MONTH' or 'YEAR'), @period_start and @period_end (DATE, half-open).
SELECT
  CASE @granularity
    WHEN 'DAY' THEN created_date
    WHEN 'MONTH' THEN DATE_TRUNC(created_date, MONTH)
    ELSE DATE_TRUNC(created_date, YEAR)
  END AS period_start,
  @granularity AS granularity,
  source,
  COUNT(*) AS leads,
  CURRENT_TIMESTAMP() AS loaded_at
FROM {{ident}}_trusted.leads
WHERE created_date >= @period_start AND created_date < @period_end
GROUP BY period_start, source
