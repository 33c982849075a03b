-- target: funnel_refined.attainment
-- replace: period
-- granularities: MONTH, YEAR
-- Won deals against the monthly targets, per month or year, channel and segment. A year's target
-- is the sum of its months' targets. Combinations with a target and no deal (or a deal and no
-- target) are kept: missing attainment is information.
WITH won AS (
  SELECT
    CASE @granularity WHEN 'MONTH' THEN DATE_TRUNC(DATE(w.won_at), MONTH)
                      ELSE DATE_TRUNC(DATE(w.won_at), YEAR) END AS period_start,
    l.channel, l.segment,
    COUNT(DISTINCT w.deal_id) AS won_count,
    SUM(w.amount_cop) AS won_amount_cop
  FROM funnel_trusted.won_deals AS w
  JOIN funnel_trusted.leads AS l ON l.lead_id = w.lead_id
  WHERE DATE(w.won_at) >= @period_start AND DATE(w.won_at) < @period_end
  GROUP BY period_start, l.channel, l.segment
),
targets AS (
  SELECT
    CASE @granularity WHEN 'MONTH' THEN t.month ELSE DATE_TRUNC(t.month, YEAR) END AS period_start,
    t.channel, t.segment,
    SUM(t.target_won_count) AS target_won_count,
    SUM(t.target_amount_cop) AS target_amount_cop
  FROM funnel_trusted.targets AS t
  WHERE t.month >= @period_start AND t.month < @period_end
  GROUP BY period_start, t.channel, t.segment
)
SELECT
  COALESCE(w.period_start, t.period_start) AS period_start,
  @granularity AS granularity,
  COALESCE(w.channel, t.channel) AS channel,
  COALESCE(w.segment, t.segment) AS segment,
  COALESCE(w.won_count, 0) AS won_count,
  COALESCE(w.won_amount_cop, 0) AS won_amount_cop,
  t.target_won_count,
  t.target_amount_cop,
  SAFE_DIVIDE(COALESCE(w.won_amount_cop, 0), t.target_amount_cop) * 100 AS attainment_pct,
  CURRENT_TIMESTAMP() AS loaded_at
FROM won AS w
FULL OUTER JOIN targets AS t
  ON t.period_start = w.period_start AND t.channel = w.channel AND t.segment = w.segment
