-- Monthly funnel per channel and segment, one row per stage, in stage order.
SELECT
  f.period_start AS month,
  f.channel,
  f.segment,
  f.stage,
  f.stage_order,
  f.volume,
  f.conversion_rate,
  f.avg_days_from_previous,
  f.amount_cop
FROM `analitica-funnel.funnel_refined.funnel_monthly` AS f
