-- Conversion from lead to won per month and channel, all segments together.
WITH by_stage AS (
  SELECT month, channel, stage, SUM(volume) AS volume
  FROM `analitica-funnel.funnel_reporting.v_funnel_monthly`
  GROUP BY month, channel, stage
)
SELECT
  l.month,
  l.channel,
  l.volume AS leads,
  w.volume AS won,
  SAFE_DIVIDE(w.volume, l.volume) AS lead_to_won_rate
FROM by_stage AS l
LEFT JOIN by_stage AS w
  ON w.month = l.month AND w.channel = l.channel AND w.stage = 'won'
WHERE l.stage = 'lead'
