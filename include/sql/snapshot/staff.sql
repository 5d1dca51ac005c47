SELECT st.staff_id, st.first_name, st.middle_name, st.last_name, st.email, st.username, st.state_educator_id,
       st.staff_role, st.initial_password
FROM staff st
WHERE st.is_active = 1
ORDER BY st.staff_id
