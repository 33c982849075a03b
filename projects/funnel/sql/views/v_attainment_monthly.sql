-- Attainment against monthly targets, with a traffic-light status.
SELECT
  a.period_start AS month,
  a.channel,
  a.segment,
  a.won_count,
  a.won_amount_cop,
  a.target_amount_cop,
  a.attainment_pct,
  CASE
    WHEN a.attainment_pct >= 100 THEN 'green'
    WHEN a.attainment_pct >= 80 THEN 'yellow'
    ELSE 'red'
  END AS status
FROM `analitica-funnel.funnel_refined.attainment` AS a
WHERE a.granularity = 'MONTH'
