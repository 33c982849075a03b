"""Each trusted flow's rules on small hand-made inputs; expected values worked out by hand."""

from datetime import date, datetime
from decimal import Decimal

import pytest

from funnelops.flows.raw import FlowSourceError

LEADS = "FUNNEL/TERADATA/leads/2024/03/leads_20240305.csv"
HEADER = "ID_LEAD,FECHA_CREACION,CANAL,SEGMENTO,REGION,CIUDAD,ASESOR,EMPRESA,MONTO_ESTIMADO_COP\n"


def test_leads_rules_lines_and_counts(flow_runner):
    flow_runner.write(LEADS, "\ufeff" + HEADER +                                                  # line 1 (BOM)
        "L1,2024-03-05 08:00:00,Web,Pyme,Andina,Bogotá,José Gómez,Ñandú S.A.S.,1500000\n"             # 2 kept
        "L2,05/03/2024 09:00:00,Web,Pyme,Andina,Bogotá,José Gómez,Uno S.A.,100\n"                    # 3 date
        "L3,2024-03-05 10:00:00,Web,Pyme,Andina,Cali,Ana,Dos, S.A.,100\n"                            # 4 10 columns
        ",2024-03-05 11:00:00,Evento,Pyme,Caribe,Cali,Ana,Tres,100\n"                                 # 5 no id
        "L4,2024-03-05 12:00:00,Evento,Pyme,Caribe,Cali,Ana,Cuatro,-5\n"                             # 6 negative
        "L5,2024-03-05 13:00:00,Evento,Pyme,Caribe,Cali,Ana,Cinco,N/A\n"                             # 7 non-numeric
        "L1,2024-03-05 08:00:00,Web,Pyme,Andina,Bogotá,José Gómez,Ñandú S.A.S.,1500000\n"             # 8 duplicate
        "L6,2024-02-30 14:00:00,Web,Pyme,Andina,Bogotá,Ana,Seis,7\n"                                 # 9 impossible date
        "L7,2024-03-04 23:59:59,Web,Corporativo,Andina,Bogotá,Ana,Siete,7.5\n")                      # 10 other day
    r = flow_runner("leads", max_share=1)   # 8 of 9 rows quarantined: over the default limit on purpose
    assert (r.read, r.kept, r.quarantined) == (9, 1, 8)
    assert r.rules == {"amount_non_negative": 1, "amount_numeric": 1, "column_count": 1, "date_in_period": 1,
                       "duplicate": 1, "id_not_null": 1, "parsable_date": 2}
    [kept] = flow_runner.rows("leads", "lead_id")
    assert kept == {"lead_id": "L1", "created_at": datetime(2024, 3, 5, 8), "channel": "Web", "segment": "Pyme",
                    "region": "Andina", "city": "Bogotá", "sales_rep": "José Gómez", "company": "Ñandú S.A.S.",
                    "estimated_amount_cop": Decimal("1500000.00"), "event_date": date(2024, 3, 5)}
    q = {(x["source_line"], x["rule"]) for x in flow_runner.rows("_quarantine/leads", "source_line")}
    assert q == {(3, "parsable_date"), (4, "column_count"), (5, "id_not_null"), (6, "amount_non_negative"),
                 (7, "amount_numeric"), (8, "duplicate"), (9, "parsable_date"), (10, "date_in_period")}
    line4 = [x for x in flow_runner.rows("_quarantine/leads", "source_line") if x["source_line"] == 4][0]
    assert line4["raw_record"] == "L3,2024-03-05 10:00:00,Web,Pyme,Andina,Cali,Ana,Dos, S.A.,100"
    assert line4["source_file"] == LEADS


def test_rerun_replaces_the_period_and_full_keeps_other_days(flow_runner):
    flow_runner.write(LEADS, HEADER + "L1,2024-03-05 08:00:00,Web,Pyme,Andina,Cali,Ana,Uno,1\n")
    flow_runner.write("FUNNEL/TERADATA/leads/2024/03/leads_20240306.csv",
                      HEADER + "L2,2024-03-06 08:00:00,Web,Pyme,Andina,Cali,Ana,Dos,2\n")
    for _ in range(2):
        flow_runner("leads")
    assert [r["lead_id"] for r in flow_runner.rows("leads", "lead_id")] == ["L1"]
    flow_runner("leads", "DAY", "2024-03-06")
    flow_runner("leads", "DAY", "2024-03-06")
    assert [r["lead_id"] for r in flow_runner.rows("leads", "lead_id")] == ["L1", "L2"]
    # the day's file is corrected: its partition is replaced, not appended to
    flow_runner.write("FUNNEL/TERADATA/leads/2024/03/leads_20240306.csv",
                      HEADER + "L3,2024-03-06 09:00:00,Web,Pyme,Andina,Cali,Ana,Tres,3\n")
    flow_runner("leads", "DAY", "2024-03-06")
    assert [r["lead_id"] for r in flow_runner.rows("leads", "lead_id")] == ["L1", "L3"]
    r = flow_runner("leads", "YEAR", "2024", execution_type="full")
    assert (r.read, r.kept) == (2, 2)
    assert [r["lead_id"] for r in flow_runner.rows("leads", "lead_id")] == ["L1", "L3"]


def test_stage_changes_map_spanish_stages(flow_runner):
    flow_runner.write("FUNNEL/TERADATA/stage_changes/2024/03/stage_changes_20240305.csv",
        "ID_CAMBIO,ID_LEAD,ETAPA,FECHA_CAMBIO,ASESOR\n"
        "C1,L1,Calificado,2024-03-05 08:00:00,Ana\n"
        "C2,L1, OPORTUNIDAD ,2024-03-05 09:00:00,Ana\n"
        "C3,L2,ganado,2024-03-05 10:00:00,Ana\n"
        "C4,L3,Perdido,2024-03-05 11:00:00,Ana\n"
        "C5,L4,En revisión,2024-03-05 12:00:00,Ana\n"
        "C6,,Calificado,2024-03-05 12:00:00,Ana\n")
    r = flow_runner("stage_changes")
    assert (r.read, r.kept, r.quarantined) == (6, 4, 2)
    assert r.rules == {"known_stage": 1, "id_not_null": 1}
    got = [(x["change_id"], x["stage"]) for x in flow_runner.rows("stage_changes", "change_id")]
    assert got == [("C1", "qualified"), ("C2", "opportunity"), ("C3", "won"), ("C4", "lost")]


def test_won_deals_keep_decimal_amounts(flow_runner):
    flow_runner.write("FUNNEL/TERADATA/won_deals/2024/03/won_deals_20240305.csv",
        "ID_NEGOCIO,ID_OPORTUNIDAD,ID_LEAD,FECHA_CIERRE,MONTO_COP,ASESOR\n"
        "N1,O1,L1,2024-03-05 08:00:00,1250000.5,Ana\n"
        "N2,O2,L2,2024-03-05 08:00:00,$ 1.250.000,Ana\n"
        "N3,O3,L3,2024-03-05 08:00:00,0,Ana\n")
    r = flow_runner("won_deals")
    assert r.rules == {"amount_numeric": 1}
    got = [(x["deal_id"], x["amount_cop"]) for x in flow_runner.rows("won_deals", "deal_id")]
    assert got == [("N1", Decimal("1250000.50")), ("N3", Decimal("0.00"))]


def test_targets_from_excel(flow_runner, tmp_path):
    from openpyxl import Workbook

    wb = Workbook()
    ws = wb.active
    ws.append(["Metas comerciales de marzo de 2024"])
    ws.append([])
    ws.append(["MES", "CANAL", "SEGMENTO", "META_NEGOCIOS", "META_MONTO_COP"])   # row 3
    ws.append(["2024-03", "Web", "Pyme", 10, 50000000])                          # row 4 kept
    ws.append(["2024-03", "Web", "Corporativo", 3, None])                        # row 5 no target
    ws.append(["2024-03", "Web", "Pyme", 11, 60000000])                          # row 6 duplicate key
    ws.append(["2024-03", "Evento", "Gobierno", 2, 9000000])                     # row 7 kept
    path = tmp_path / "buckets" / "analitica-funnel-raw" / "FUNNEL/EXCEL/metas/2024/metas_202403.xlsx"
    path.parent.mkdir(parents=True)
    wb.save(path)
    r = flow_runner("targets", "DAY", "2024-03-17")
    assert (r.read, r.kept, r.quarantined) == (4, 2, 2)
    got = [(x["channel"], x["segment"], x["target_won_count"], x["target_amount_cop"], x["event_date"])
           for x in flow_runner.rows("targets", "channel")]
    assert got == [("Evento", "Gobierno", 2, Decimal("9000000.00"), date(2024, 3, 1)),
                   ("Web", "Pyme", 10, Decimal("50000000.00"), date(2024, 3, 1))]
    q = {(x["source_line"], x["rule"]) for x in flow_runner.rows("_quarantine/targets", "source_line")}
    assert q == {(5, "target_present"), (6, "duplicate")}


def test_missing_source_file_fails_naming_it(flow_runner):
    with pytest.raises(FlowSourceError) as e:
        flow_runner("leads", "DAY", "2024-03-09")
    assert "leads/2024/03/leads_20240309.csv" in e.value.message
