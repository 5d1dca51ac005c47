SELECT d.district_id, d.name, d.cds_district_code, d.nces_id, d.state_code
FROM district d
ORDER BY d.district_id
