-- target: funnel_refined.funnel_{granularity}
-- replace: period
-- The funnel per period, channel and segment: how many leads reached each stage in the period
-- (lead -> qualified -> opportunity -> won), the conversion from the previous stage, the mean days
-- it took from the previous stage, and the amounts in COP at that stage.
-- Parameters: @granularity ('DAY', 'MONTH', 'YEAR'), @period_start, @period_end (DATE, half-open).
WITH leads AS (
  SELECT lead_id, channel, segment, created_at, estimated_amount_cop
  FROM funnel_trusted.leads
),
first_reached AS (
  -- the first time each lead reached each later stage
  SELECT lead_id, stage, MIN(changed_at) AS reached_at
  FROM funnel_trusted.stage_changes
  WHERE stage IN ('qualified', 'opportunity', 'won')
  GROUP BY lead_id, stage
),
opportunity_amounts AS (
  SELECT lead_id, SUM(amount_cop) AS amount_cop FROM funnel_trusted.opportunities GROUP BY lead_id
),
won_amounts AS (
  SELECT lead_id, SUM(amount_cop) AS amount_cop FROM funnel_trusted.won_deals GROUP BY lead_id
),
reached AS (
  SELECT l.lead_id, l.channel, l.segment, 'lead' AS stage, 1 AS stage_order,
         l.created_at AS reached_at, CAST(NULL AS TIMESTAMP) AS previous_at,
         l.estimated_amount_cop AS amount_cop
  FROM leads AS l
  UNION ALL
  SELECT l.lead_id, l.channel, l.segment, r.stage,
         CASE r.stage WHEN 'qualified' THEN 2 WHEN 'opportunity' THEN 3 ELSE 4 END AS stage_order,
         r.reached_at,
         CASE r.stage WHEN 'qualified' THEN l.created_at
                      WHEN 'opportunity' THEN q.reached_at
                      ELSE o.reached_at END AS previous_at,
         CASE r.stage WHEN 'qualified' THEN l.estimated_amount_cop
                      WHEN 'opportunity' THEN oa.amount_cop
                      ELSE wa.amount_cop END AS amount_cop
  FROM first_reached AS r
  JOIN leads AS l ON l.lead_id = r.lead_id
  LEFT JOIN first_reached AS q ON q.lead_id = r.lead_id AND q.stage = 'qualified'
  LEFT JOIN first_reached AS o ON o.lead_id = r.lead_id AND o.stage = 'opportunity'
  LEFT JOIN opportunity_amounts AS oa ON oa.lead_id = r.lead_id
  LEFT JOIN won_amounts AS wa ON wa.lead_id = r.lead_id
),
in_period AS (
  SELECT
    CASE @granularity
      WHEN 'DAY' THEN DATE(reached_at)
      WHEN 'MONTH' THEN DATE_TRUNC(DATE(reached_at), MONTH)
      ELSE DATE_TRUNC(DATE(reached_at), YEAR)
    END AS period_start,
    channel, segment, stage, stage_order, lead_id, amount_cop,
    TIMESTAMP_DIFF(reached_at, previous_at, SECOND) / 86400.0 AS days_from_previous
  FROM reached
  WHERE DATE(reached_at) >= @period_start AND DATE(reached_at) < @period_end
),
volumes AS (
  SELECT period_start, channel, segment, stage, stage_order,
         COUNT(DISTINCT lead_id) AS volume,
         AVG(days_from_previous) AS avg_days_from_previous,
         SUM(amount_cop) AS amount_cop
  FROM in_period
  GROUP BY period_start, channel, segment, stage, stage_order
)
SELECT
  v.period_start,
  @granularity AS granularity,
  v.channel,
  v.segment,
  v.stage,
  v.stage_order,
  v.volume,
  SAFE_DIVIDE(v.volume, p.volume) AS conversion_rate,
  v.avg_days_from_previous,
  v.amount_cop,
  CURRENT_TIMESTAMP() AS loaded_at
FROM volumes AS v
LEFT JOIN volumes AS p
  ON p.period_start = v.period_start AND p.channel = v.channel AND p.segment = v.segment
 AND p.stage_order = v.stage_order - 1
