-- target: funnel_refined.dim_indicators
-- replace: all
-- The funnel's indicators: what each one measures and how it is computed.
SELECT 'volume' AS indicator_id, 'Volumen por etapa' AS name,
       'Leads that reached the stage in the period' AS description,
       'COUNT(DISTINCT lead_id) per period, channel, segment and stage' AS formula, 'leads' AS unit
UNION ALL
SELECT 'conversion_rate', 'Tasa de conversión',
       'Share of the volume of the previous stage that reached this stage in the same period',
       'volume / volume of the previous stage', 'ratio'
UNION ALL
SELECT 'avg_days_from_previous', 'Velocidad entre etapas',
       'Mean days a lead took to reach this stage from the previous one',
       'AVG(reached_at - previous stage reached_at) in days', 'days'
UNION ALL
SELECT 'amount_cop', 'Monto por etapa',
       'Estimated amount (lead, qualified), opportunity amount or won amount',
       'SUM(amount_cop)', 'COP'
UNION ALL
SELECT 'attainment_pct', 'Cumplimiento de metas',
       'Won amount against the monthly targets',
       'won_amount_cop / target_amount_cop * 100', 'percent'
